//! Workspaces, their members and invitations, and projects.

use crate::db::Row;
use canopy_domain::{SubjectKind, WorkspaceRole};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, RowExt, StoreError, Tx, new_id, page_limit, to_us};

#[derive(Debug, Clone)]
pub struct WorkspaceRecord {
    pub id: Uuid,
    pub identifier: String,
    pub display_name: String,
    pub created_at: OffsetDateTime,
}

/// A person to notify: id, username and e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
}

pub(crate) fn person_from_row(r: &Row) -> Result<PersonRecord> {
    Ok(PersonRecord { id: r.uuid("id")?, username: r.text("username")?, email: r.text("email")? })
}

fn workspace_from_row(r: &Row) -> Result<WorkspaceRecord> {
    Ok(WorkspaceRecord {
        id: r.uuid("id")?,
        identifier: r.text("identifier")?,
        display_name: r.text("display_name")?,
        created_at: r.time("created_at")?,
    })
}

/// One membership of a workspace, with the subject's names.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub kind: SubjectKind,
    pub subject_id: Uuid,
    /// Username or group identifier.
    pub name: String,
    /// "First Last" of a user, display name of a group.
    pub display_name: String,
    pub email: Option<String>,
    pub role: WorkspaceRole,
    pub granted_by: String,
    pub granted_at: OffsetDateTime,
}

/// A type-ahead match.
#[derive(Debug, Clone)]
pub struct SearchRecord {
    pub kind: SubjectKind,
    pub name: String,
    pub display_name: String,
    pub email: Option<String>,
}

fn search_record(r: &Row) -> Result<SearchRecord> {
    let first = r.text("first_name")?;
    let last = r.text("last_name")?;
    Ok(SearchRecord {
        kind: r.parse("kind")?,
        name: r.text("name")?,
        display_name: crate::person_display_name(&first, &last),
        email: r.text_opt("email")?,
    })
}

#[derive(Debug, Clone)]
pub struct InvitationRecord {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub email: String,
    pub role: WorkspaceRole,
    pub invited_by: String,
    pub created_at: OffsetDateTime,
}

/// A membership from a row of `kind`, `subject_id`, `name`, `first_name`,
/// `last_name`, `email`, `role`, `granted_by` and `granted_at`.
fn member_from_row(r: &Row) -> Result<MemberRecord> {
    let first = r.text("first_name")?;
    let last = r.text("last_name")?;
    Ok(MemberRecord {
        kind: r.parse("kind")?,
        subject_id: r.uuid("subject_id")?,
        name: r.text("name")?,
        display_name: crate::person_display_name(&first, &last),
        email: r.text_opt("email")?,
        role: r.parse("role")?,
        granted_by: r.text("granted_by")?,
        granted_at: r.time("granted_at")?,
    })
}

fn invitation_from_row(r: &Row) -> Result<InvitationRecord> {
    Ok(InvitationRecord {
        id: r.uuid("id")?,
        workspace_id: r.uuid("workspace_id")?,
        email: r.text("email")?,
        role: r.parse("role")?,
        invited_by: r.text("invited_by")?,
        created_at: r.time("created_at")?,
    })
}

/// A line of a workspace's current access: a membership or a pending
/// invitation.
#[derive(Debug, Clone)]
pub enum AccessEntry {
    Member(MemberRecord),
    Invitation(InvitationRecord),
}

#[derive(Debug, Clone)]
pub struct ProjectRecord {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub identifier: String,
    pub display_name: String,
    pub payment_method_id: Option<Uuid>,
    pub substitute_payment_method_id: Option<Uuid>,
    /// The tags as a JSON object.
    pub tags: serde_json::Map<String, serde_json::Value>,
    pub created_at: OffsetDateTime,
    /// Set while the whole project is being deleted (DL1).
    pub deletion_requested_at: Option<OffsetDateTime>,
}

/// A project from a row's columns, each named with `$prefix` (`""`, or
/// `"p_"` where they follow a workspace's own).
macro_rules! project_from_row {
    ($r:expr, $prefix:literal) => {{
        let r: &Row = $r;
        let tags = r.text(concat!($prefix, "tags"))?;
        let tags = match serde_json::from_str(&tags) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(StoreError::Corrupt(format!("tags {tags:?}"))),
        };
        Ok(ProjectRecord {
            id: r.uuid(concat!($prefix, "id"))?,
            workspace_id: r.uuid(concat!($prefix, "workspace_id"))?,
            identifier: r.text(concat!($prefix, "identifier"))?,
            display_name: r.text(concat!($prefix, "display_name"))?,
            payment_method_id: r.uuid_opt(concat!($prefix, "payment_method_id"))?,
            substitute_payment_method_id: r.uuid_opt(concat!($prefix, "substitute_payment_method_id"))?,
            tags,
            created_at: r.time(concat!($prefix, "created_at"))?,
            deletion_requested_at: r.time_opt(concat!($prefix, "deletion_requested_at"))?,
        })
    }};
}

fn project_from_row(r: &Row) -> Result<ProjectRecord> {
    project_from_row!(r, "")
}

/// The project of a row of [`WORKSPACE_WITH_ROLES`], if the row has one.
fn joined_project_from_row(r: &Row) -> Result<Option<ProjectRecord>> {
    if r.text_opt("p_id")?.is_none() {
        return Ok(None);
    }
    project_from_row!(r, "p_").map(Some)
}

/// A workspace by its identifier ($1), with the roles its user $2 holds
/// there directly or through groups (a row each) and, in the first row, its
/// project $3 (columns `p_*`, NULL when there is none).
const WORKSPACE_WITH_ROLES: &str = "SELECT w.id, w.identifier, w.display_name, w.created_at, w.four_eye_enabled, \
       w.four_eye_approvals, NULL AS role, p.id AS p_id, p.workspace_id AS p_workspace_id, \
       p.identifier AS p_identifier, p.display_name AS p_display_name, p.payment_method_id AS p_payment_method_id, \
       p.substitute_payment_method_id AS p_substitute_payment_method_id, p.tags AS p_tags, \
       p.created_at AS p_created_at, p.deletion_requested_at AS p_deletion_requested_at \
     FROM workspaces w LEFT JOIN projects p ON p.workspace_id = w.id AND p.identifier = $3 \
     WHERE w.identifier = $1 \
     UNION ALL SELECT w.id, w.identifier, w.display_name, w.created_at, w.four_eye_enabled, \
       w.four_eye_approvals, m.role, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM workspaces w \
     JOIN workspace_members m ON m.workspace_id = w.id WHERE w.identifier = $1 AND m.user_id = $2 \
     UNION ALL SELECT w.id, w.identifier, w.display_name, w.created_at, w.four_eye_enabled, \
       w.four_eye_approvals, m.role, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM workspaces w \
     CROSS JOIN group_members g CROSS JOIN workspace_members m \
     WHERE w.identifier = $1 AND g.user_id = $2 AND m.workspace_id = w.id AND m.group_id = g.group_id";

const PROJECT_COLS: &str = "id, workspace_id, identifier, display_name, payment_method_id, substitute_payment_method_id, tags, created_at, \
     deletion_requested_at";

fn subject_column(kind: SubjectKind) -> &'static str {
    match kind {
        SubjectKind::User => "user_id",
        SubjectKind::Group => "group_id",
    }
}

impl Tx {
    // ------------------------------------------------------------ workspaces

    /// Create a workspace and its history chain.
    pub async fn insert_workspace(
        &mut self,
        identifier: &str,
        display_name: &str,
        now: OffsetDateTime,
    ) -> Result<WorkspaceRecord> {
        let id = Uuid::new_v4();
        let written = crate::db::query(
            "INSERT INTO workspaces (id, identifier, display_name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(identifier)
        .bind(display_name)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_workspace");
        self.create_chain(&id.to_string(), identifier).await?;
        Ok(WorkspaceRecord {
            id,
            identifier: identifier.to_owned(),
            display_name: display_name.to_owned(),
            created_at: now,
        })
    }

    pub async fn workspace_by_identifier(&mut self, identifier: &str) -> Result<Option<WorkspaceRecord>> {
        let row =
            crate::db::query("SELECT id, identifier, display_name, created_at FROM workspaces WHERE identifier = $1")
                .bind(identifier)
                .fetch_optional(self.conn())
                .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    pub async fn workspace_by_id(&mut self, id: Uuid) -> Result<Option<WorkspaceRecord>> {
        let row = crate::db::query("SELECT id, identifier, display_name, created_at FROM workspaces WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    /// Workspaces ordered by identifier after `cursor`; with `member` only
    /// those where that user is a member directly or through a group.
    pub async fn list_workspaces(
        &mut self,
        member: Option<Uuid>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkspaceRecord>> {
        let rows = match member {
            // a person's workspaces: from their memberships (a few), never
            // a walk over the installation's workspaces in identifier order
            // (CROSS JOIN keeps SQLite's planner from choosing that walk)
            Some(user) => {
                crate::db::query(
                    "SELECT w.id, w.identifier, w.display_name, w.created_at FROM \
                     (SELECT workspace_id FROM workspace_members WHERE user_id = $1 \
                      UNION SELECT m.workspace_id FROM group_members gm \
                      JOIN workspace_members m ON m.group_id = gm.group_id WHERE gm.user_id = $1) mine \
                     CROSS JOIN workspaces w WHERE w.id = mine.workspace_id \
                     AND w.identifier > $2 ORDER BY w.identifier LIMIT CAST($3 AS BIGINT)",
                )
                .bind(user.to_string())
                .bind(cursor.unwrap_or_default())
                .bind(page_limit(limit))
                .fetch_all(self.conn())
                .await?
            }
            None => {
                crate::db::query(
                    "SELECT id, identifier, display_name, created_at FROM workspaces \
                     WHERE identifier > $1 ORDER BY identifier LIMIT CAST($2 AS BIGINT)",
                )
                .bind(cursor.unwrap_or_default())
                .bind(page_limit(limit))
                .fetch_all(self.conn())
                .await?
            }
        };
        rows.iter().map(workspace_from_row).collect()
    }

    pub async fn rename_workspace(&mut self, id: Uuid, display_name: &str) -> Result<()> {
        let written = crate::db::query("UPDATE workspaces SET display_name = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(display_name)
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "rename_workspace");
        Ok(())
    }

    /// Delete a workspace (its members, invitations and keys go with it; its
    /// history stays). The caller checks it has no projects.
    pub async fn delete_workspace(&mut self, id: Uuid) -> Result<()> {
        let written =
            crate::db::query("DELETE FROM workspaces WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_workspace");
        Ok(())
    }

    // ------------------------------------------------------------ members

    /// Every membership of a workspace, users first, then groups, by name.
    /// One page of a workspace's current access after the subject `after`
    /// (`email:ADDRESS`, `group:IDENTIFIER` or `user:NAME`), in that order:
    /// pending invitations by address, then members by their subject (groups
    /// before users), `limit` rows at most, each read through an index.
    pub async fn current_access_page(
        &mut self,
        workspace_id: Uuid,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AccessEntry>> {
        let mut out = Vec::new();
        let members_after = match after.map(|a| a.strip_prefix("email:")) {
            // invitations come first: after one of them, the rest of them
            None | Some(Some(_)) => {
                let rows = crate::db::query(
                    "SELECT id, workspace_id, email, role, invited_by, created_at FROM invitations \
                     WHERE workspace_id = $1 AND email > $2 ORDER BY email LIMIT CAST($3 AS BIGINT)",
                )
                .bind(workspace_id.to_string())
                .bind(after.and_then(|a| a.strip_prefix("email:")).unwrap_or(""))
                .bind(limit)
                .fetch_all(self.conn())
                .await?;
                for r in &rows {
                    out.push(AccessEntry::Invitation(invitation_from_row(r)?));
                }
                None
            }
            Some(None) => after,
        };
        let left = limit - i64::try_from(out.len()).unwrap_or(limit);
        if left <= 0 {
            return Ok(out);
        }
        let rows = crate::db::query(
            "SELECT CASE WHEN m.user_id IS NULL THEN 'group' ELSE 'user' END AS kind, \
                    COALESCE(m.user_id, m.group_id) AS subject_id, COALESCE(u.username, g.identifier) AS name, \
                    COALESCE(u.first_name, g.display_name) AS first_name, COALESCE(u.last_name, '') AS last_name, \
                    u.email AS email, m.role, m.granted_by, m.granted_at \
             FROM workspace_members m LEFT JOIN users u ON u.id = m.user_id LEFT JOIN user_groups g ON g.id = m.group_id \
             WHERE m.workspace_id = $1 AND m.subject_name > $2 ORDER BY m.subject_name LIMIT CAST($3 AS BIGINT)",
        )
        .bind(workspace_id.to_string())
        .bind(members_after.unwrap_or_default())
        .bind(left)
        .fetch_all(self.conn())
        .await?;
        for r in &rows {
            out.push(AccessEntry::Member(member_from_row(r)?));
        }
        Ok(out)
    }

    pub async fn workspace_members(&mut self, workspace_id: Uuid) -> Result<Vec<MemberRecord>> {
        let rows = crate::db::query(
            "SELECT 'user' AS kind, u.id AS subject_id, u.username AS name, \
                    u.first_name AS first_name, u.last_name AS last_name, u.email AS email, \
                    m.role, m.granted_by, m.granted_at \
             FROM workspace_members m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 \
             UNION ALL \
             SELECT 'group' AS kind, g.id AS subject_id, g.identifier AS name, \
                    g.display_name AS first_name, '' AS last_name, NULL AS email, \
                    m.role, m.granted_by, m.granted_at \
             FROM workspace_members m JOIN user_groups g ON g.id = m.group_id WHERE m.workspace_id = $1 \
             ORDER BY kind DESC, name",
        )
        .bind(workspace_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// The role a user or group holds directly in a workspace.
    pub async fn member_role(
        &mut self,
        workspace_id: Uuid,
        kind: SubjectKind,
        subject_id: Uuid,
    ) -> Result<Option<WorkspaceRole>> {
        let sql = match kind {
            SubjectKind::User => "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
            SubjectKind::Group => "SELECT role FROM workspace_members WHERE workspace_id = $1 AND group_id = $2",
        };
        let row = crate::db::query(sql)
            .bind(workspace_id.to_string())
            .bind(subject_id.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| r.parse("role")).transpose()
    }

    /// The active people who manage a workspace: its owners and managers,
    /// directly or through a group.
    pub async fn workspace_managers(&mut self, workspace_id: Uuid) -> Result<Vec<PersonRecord>> {
        let rows = crate::db::query(
            "SELECT DISTINCT u.id, u.username, u.email FROM users u WHERE u.active = $2 AND u.id IN ( \
               SELECT m.user_id FROM workspace_members m WHERE m.workspace_id = $1 \
                 AND m.role IN ('workspace_owner', 'workspace_manager') AND m.user_id IS NOT NULL \
               UNION SELECT gm.user_id FROM workspace_members m JOIN group_members gm ON gm.group_id = m.group_id \
                 WHERE m.workspace_id = $1 AND m.role IN ('workspace_owner', 'workspace_manager')) \
             ORDER BY u.username",
        )
        .bind(workspace_id.to_string())
        .bind(1i64)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(person_from_row).collect()
    }

    /// Every role a user holds in a workspace: directly and through each of their groups (WS4).
    pub async fn membership_roles_of_user(&mut self, workspace_id: Uuid, user_id: Uuid) -> Result<Vec<WorkspaceRole>> {
        membership_roles_of_user(self.conn(), workspace_id, user_id).await
    }

    /// A workspace by its identifier and, with `user`, every role that user
    /// holds in it (directly and through groups): one statement of index
    /// lookups, so that a request loads and authorises in one round trip.
    /// The groups are joined in a fixed order (`CROSS JOIN`, which SQLite
    /// does not reorder) rather than read through `IN (SELECT ...)`, for
    /// which SQLite fills a temporary table on every run (about a third of
    /// the statement's time).
    pub async fn workspace_with_roles(
        &mut self,
        identifier: &str,
        user: Option<Uuid>,
    ) -> Result<Option<(WorkspaceRecord, Vec<WorkspaceRole>)>> {
        Ok(self.project_with_roles(identifier, None, user).await?.map(|(ws, roles, _)| (ws, roles)))
    }

    /// [`Tx::workspace_with_roles`] and, read by the same statement, the
    /// workspace's project `project` (`None` when it has none by that
    /// identifier): what a request naming a project reads first.
    pub async fn project_with_roles(
        &mut self,
        identifier: &str,
        project: Option<&str>,
        user: Option<Uuid>,
    ) -> Result<Option<(WorkspaceRecord, Vec<WorkspaceRole>, Option<ProjectRecord>)>> {
        let rows = crate::db::query(WORKSPACE_WITH_ROLES)
            .bind(identifier)
            .bind(user.map(|u| u.to_string()))
            .bind(project)
            .fetch_all(self.conn())
            .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let ws = workspace_from_row(first)?;
        // the row's own four-eye setting, which a change asks for next
        self.workspace_four_eye = Some((ws.id, crate::settings::own_four_eye(first)?));
        let mut roles = Vec::new();
        let mut found = None;
        for r in &rows {
            if let Some(role) = r.text_opt("role")? {
                roles.push(role.parse().map_err(|_| crate::StoreError::Corrupt("workspace role".into()))?);
            }
            if let Some(p) = joined_project_from_row(r)? {
                found = Some(p);
            }
        }
        Ok(Some((ws, roles, found)))
    }

    /// Add a membership or change its role.
    pub async fn upsert_member(
        &mut self,
        workspace_id: Uuid,
        kind: SubjectKind,
        subject_id: Uuid,
        role: WorkspaceRole,
        granted_by: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        let col = subject_column(kind);
        let updated = crate::db::query(format!(
            "UPDATE workspace_members SET role = $3, granted_by = $4, granted_at = $5 WHERE workspace_id = $1 AND {col} = $2"
        ))
        .bind(workspace_id.to_string())
        .bind(subject_id.to_string())
        .bind(role.as_str())
        .bind(granted_by)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(updated.rows_affected(), "upsert_member");
        if updated.rows_affected() == 0 {
            // the name current access sorts by (see `current_access_page`)
            let name = match kind {
                SubjectKind::User => "(SELECT 'user:' || username FROM users WHERE id = $3)",
                SubjectKind::Group => "(SELECT 'group:' || identifier FROM user_groups WHERE id = $3)",
            };
            let written = crate::db::query(format!(
                "INSERT INTO workspace_members (id, workspace_id, {col}, role, granted_by, granted_at, subject_name) \
                 VALUES ($1, $2, $3, $4, $5, $6, {name})"
            ))
            .bind(new_id())
            .bind(workspace_id.to_string())
            .bind(subject_id.to_string())
            .bind(role.as_str())
            .bind(granted_by)
            .bind(to_us(now))
            .execute(self.conn())
            .await?;
            self.changed(written.rows_affected(), "upsert_member");
        }
        Ok(())
    }

    pub async fn delete_member(&mut self, workspace_id: Uuid, kind: SubjectKind, subject_id: Uuid) -> Result<()> {
        let col = subject_column(kind);
        let written = crate::db::query(format!("DELETE FROM workspace_members WHERE workspace_id = $1 AND {col} = $2"))
            .bind(workspace_id.to_string())
            .bind(subject_id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "delete_member");
        Ok(())
    }

    /// The workspaces where a user or group is a direct member, with the role.
    pub async fn direct_memberships(
        &mut self,
        kind: SubjectKind,
        subject_id: Uuid,
    ) -> Result<Vec<(Uuid, WorkspaceRole)>> {
        let col = subject_column(kind);
        let rows = crate::db::query(format!(
            "SELECT workspace_id, role FROM workspace_members WHERE {col} = $1 ORDER BY workspace_id"
        ))
        .bind(subject_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| Ok((r.uuid("workspace_id")?, r.parse("role")?))).collect()
    }

    /// Type-ahead over a workspace's users (direct members and members of
    /// member groups) and its groups (AC9). `q` matches anywhere,
    /// case-insensitively: first and last name, e-mail, username; group
    /// identifier and display name. The people are read from the
    /// workspace's members (one set of ids, so that the database starts
    /// from them; two `IN` lists joined by `OR` made PostgreSQL read every
    /// user of the installation).
    pub async fn search_workspace(&mut self, workspace_id: Uuid, q: &str, limit: u32) -> Result<Vec<SearchRecord>> {
        let pattern = crate::accounts::like_pattern(q);
        let rows = crate::db::query(
            "SELECT 'user' AS kind, u.username AS name, u.first_name AS first_name, u.last_name AS last_name, u.email AS email \
             FROM users u WHERE u.active = 1 AND u.id IN ( \
               SELECT user_id FROM workspace_members WHERE workspace_id = $1 AND user_id IS NOT NULL \
               UNION SELECT gm.user_id FROM group_members gm JOIN workspace_members m ON m.group_id = gm.group_id \
                 WHERE m.workspace_id = $1) \
             AND (LOWER(u.username) LIKE $2 ESCAPE '\\' OR LOWER(u.email) LIKE $2 ESCAPE '\\' \
                OR LOWER(u.first_name) LIKE $2 ESCAPE '\\' OR LOWER(u.last_name) LIKE $2 ESCAPE '\\' \
                OR LOWER(u.first_name || ' ' || u.last_name) LIKE $2 ESCAPE '\\') \
             UNION ALL \
             SELECT 'group' AS kind, g.identifier AS name, g.display_name AS first_name, '' AS last_name, NULL AS email \
             FROM user_groups g JOIN workspace_members m ON m.group_id = g.id WHERE m.workspace_id = $1 \
             AND (LOWER(g.identifier) LIKE $2 ESCAPE '\\' OR LOWER(g.display_name) LIKE $2 ESCAPE '\\') \
             ORDER BY kind DESC, name LIMIT CAST($3 AS BIGINT)",
        )
        .bind(workspace_id.to_string())
        .bind(pattern)
        .bind(i64::from(limit))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(search_record).collect()
    }

    /// Type-ahead over every active user (username, e-mail, first and last
    /// name) and group (identifier, name) of the installation: whom a
    /// workspace manager may invite (WS3, WS4). Groups first, then people,
    /// by name; at most `limit`.
    pub async fn search_directory(&mut self, q: &str, limit: u32) -> Result<Vec<SearchRecord>> {
        let pattern = crate::accounts::like_pattern(q);
        let rows = crate::db::query(
            "SELECT 'user' AS kind, u.username AS name, u.first_name AS first_name, u.last_name AS last_name, u.email AS email \
             FROM users u WHERE u.active = 1 \
             AND (LOWER(u.username) LIKE $1 ESCAPE '\\' OR LOWER(u.email) LIKE $1 ESCAPE '\\' \
                OR LOWER(u.first_name) LIKE $1 ESCAPE '\\' OR LOWER(u.last_name) LIKE $1 ESCAPE '\\' \
                OR LOWER(u.first_name || ' ' || u.last_name) LIKE $1 ESCAPE '\\') \
             UNION ALL \
             SELECT 'group' AS kind, g.identifier AS name, g.display_name AS first_name, '' AS last_name, NULL AS email \
             FROM user_groups g WHERE (LOWER(g.identifier) LIKE $1 ESCAPE '\\' OR LOWER(g.display_name) LIKE $1 ESCAPE '\\') \
             ORDER BY kind DESC, name LIMIT CAST($2 AS BIGINT)",
        )
        .bind(pattern)
        .bind(i64::from(limit))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(search_record).collect()
    }

    /// Lock a workspace's row until the transaction ends, so that checks
    /// over its members (such as "keeps an owner") are not raced. Its own
    /// four-eye setting is read again with the lock (see
    /// [`Tx::workspace_four_eye`]): one read before it may be stale.
    ///
    /// On PostgreSQL the row is taken after the workspace's turn (see
    /// [`workspace_turn`]), so that a steady stream of binding adds sharing
    /// the row cannot keep it from a member's removal.
    pub async fn lock_workspace(&mut self, workspace_id: Uuid) -> Result<()> {
        if self.only_writer() || self.workspaces_locked.contains(&workspace_id) {
            return Ok(());
        }
        let (class, key) = workspace_turn(workspace_id);
        let row = crate::db::query(
            "WITH turn AS MATERIALIZED (SELECT pg_advisory_xact_lock(CAST($2 AS INTEGER), CAST($3 AS INTEGER))) \
             UPDATE workspaces SET identifier = identifier FROM turn WHERE id = $1 \
             RETURNING four_eye_enabled, four_eye_approvals",
        )
        .bind(workspace_id.to_string())
        .bind(class)
        .bind(key)
        .fetch_optional(self.conn())
        .await?;
        self.workspaces_locked.insert(workspace_id);
        self.locked_four_eye(workspace_id, row)
    }

    /// Lock several workspaces as [`Tx::lock_workspace`] locks one, in
    /// ascending id order (each turn before its row, so every locker takes
    /// them in one order); for changes that reach a person's every workspace
    /// (an account deleted, an emergency revocation). Beyond
    /// [`TURNS_AT_ONCE`] workspaces only their rows are locked: one advisory
    /// lock per workspace of a person in thousands could fill PostgreSQL's
    /// lock table (an entry per lock until commit; 64 per connection by
    /// default), so such a change may wait for a stream of binding adds to
    /// pause.
    pub async fn lock_workspaces(&mut self, ids: &std::collections::BTreeSet<Uuid>) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        let turns = ids.len() <= TURNS_AT_ONCE;
        for &id in ids {
            if self.workspaces_locked.contains(&id) {
                continue;
            }
            if turns {
                self.lock_workspace(id).await?;
                continue;
            }
            let row = crate::db::query(
                "UPDATE workspaces SET identifier = identifier WHERE id = $1 \
                 RETURNING four_eye_enabled, four_eye_approvals",
            )
            .bind(id.to_string())
            .fetch_optional(self.conn())
            .await?;
            self.workspaces_locked.insert(id);
            self.locked_four_eye(id, row)?;
        }
        Ok(())
    }

    /// Hold a workspace's row against [`Tx::lock_workspace`] until the
    /// transaction ends, without holding it against each other: for a change
    /// that relies on its members staying (a binding's subject must be one)
    /// but changes no membership. Binding writes of one workspace then run
    /// side by side, while a member's removal, which takes the row
    /// exclusively, waits for them (and they for it). On PostgreSQL `FOR
    /// SHARE`, reading the workspace's own four-eye setting again (it cannot
    /// change while the row is held); SQLite has one writer, so nothing to
    /// take.
    pub async fn share_workspace(&mut self, workspace_id: Uuid) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        let (class, key) = workspace_turn(workspace_id);
        let row = crate::db::query(
            "WITH turn AS MATERIALIZED \
               (SELECT pg_advisory_xact_lock_shared(CAST($2 AS INTEGER), CAST($3 AS INTEGER))) \
             SELECT four_eye_enabled, four_eye_approvals FROM workspaces w, turn WHERE w.id = $1 FOR SHARE OF w",
        )
        .bind(workspace_id.to_string())
        .bind(class)
        .bind(key)
        .fetch_optional(self.conn())
        .await?;
        self.locked_four_eye(workspace_id, row)
    }

    /// A lock's statement read the workspace's own four-eye setting (or
    /// found no row): what the transaction knows of it is that from now on.
    fn locked_four_eye(&mut self, workspace_id: Uuid, row: Option<Row>) -> Result<()> {
        self.workspace_four_eye = match row {
            Some(r) => Some((workspace_id, crate::settings::own_four_eye(&r)?)),
            None => None,
        };
        Ok(())
    }

    /// How many users are direct owners of a workspace (it must keep at least
    /// one; an owning group may be empty, so it does not count).
    pub async fn count_owners(&mut self, workspace_id: Uuid) -> Result<i64> {
        let r = crate::db::query(
            "SELECT COUNT(*) AS n FROM workspace_members \
             WHERE workspace_id = $1 AND role = 'workspace_owner' AND user_id IS NOT NULL",
        )
        .bind(workspace_id.to_string())
        .fetch_one(self.conn())
        .await?;
        r.int("n")
    }

    // ------------------------------------------------------------ invitations

    pub async fn insert_invitation(
        &mut self,
        workspace_id: Uuid,
        email: &str,
        role: WorkspaceRole,
        invited_by: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        let written = crate::db::query(
            "INSERT INTO invitations (id, workspace_id, email, role, invited_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(workspace_id.to_string())
        .bind(email)
        .bind(role.as_str())
        .bind(invited_by)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_invitation");
        Ok(())
    }

    pub async fn workspace_invitations(&mut self, workspace_id: Uuid) -> Result<Vec<InvitationRecord>> {
        let rows = crate::db::query(
            "SELECT id, workspace_id, email, role, invited_by, created_at FROM invitations WHERE workspace_id = $1 ORDER BY email",
        )
        .bind(workspace_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    pub async fn invitation(&mut self, workspace_id: Uuid, email: &str) -> Result<Option<InvitationRecord>> {
        let row = crate::db::query(
            "SELECT id, workspace_id, email, role, invited_by, created_at FROM invitations WHERE workspace_id = $1 AND email = $2",
        )
        .bind(workspace_id.to_string())
        .bind(email)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    /// Pending invitations of an e-mail address in every workspace.
    pub async fn invitations_for_email(&mut self, email: &str) -> Result<Vec<InvitationRecord>> {
        let rows = crate::db::query(
            "SELECT id, workspace_id, email, role, invited_by, created_at FROM invitations WHERE email = $1 ORDER BY workspace_id",
        )
        .bind(email)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    pub async fn delete_invitation(&mut self, id: Uuid) -> Result<()> {
        let written =
            crate::db::query("DELETE FROM invitations WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_invitation");
        Ok(())
    }

    // ------------------------------------------------------------ projects

    pub async fn insert_project(
        &mut self,
        workspace_id: Uuid,
        identifier: &str,
        display_name: &str,
        now: OffsetDateTime,
    ) -> Result<ProjectRecord> {
        let id = Uuid::new_v4();
        let written = crate::db::query(
            "INSERT INTO projects (id, workspace_id, identifier, display_name, tags, created_at) VALUES ($1, $2, $3, $4, '{}', $5)",
        )
        .bind(id.to_string())
        .bind(workspace_id.to_string())
        .bind(identifier)
        .bind(display_name)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_project");
        self.project(workspace_id, identifier).await?.ok_or(StoreError::Conflict)
    }

    pub async fn project(&mut self, workspace_id: Uuid, identifier: &str) -> Result<Option<ProjectRecord>> {
        let row = crate::db::query(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE workspace_id = $1 AND identifier = $2"
        ))
        .bind(workspace_id.to_string())
        .bind(identifier)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// Lock a project's row until the transaction ends (a read-modify-write
    /// of its tags must not lose a concurrent one).
    pub async fn lock_project(&mut self, id: Uuid) -> Result<()> {
        crate::db::query("UPDATE projects SET tags = tags WHERE id = $1")
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn project_by_id(&mut self, id: Uuid) -> Result<Option<ProjectRecord>> {
        let row = crate::db::query(format!("SELECT {PROJECT_COLS} FROM projects WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    pub async fn list_projects(
        &mut self,
        workspace_id: Uuid,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ProjectRecord>> {
        let rows = crate::db::query(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE workspace_id = $1 AND identifier > $2 ORDER BY identifier LIMIT CAST($3 AS BIGINT)"
        ))
        .bind(workspace_id.to_string())
        .bind(cursor.unwrap_or_default())
        .bind(page_limit(limit))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    pub async fn count_projects(&mut self, workspace_id: Uuid) -> Result<i64> {
        let r = crate::db::query("SELECT COUNT(*) AS n FROM projects WHERE workspace_id = $1")
            .bind(workspace_id.to_string())
            .fetch_one(self.conn())
            .await?;
        r.int("n")
    }

    pub async fn rename_project(&mut self, id: Uuid, display_name: &str) -> Result<()> {
        let written = crate::db::query("UPDATE projects SET display_name = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(display_name)
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "rename_project");
        Ok(())
    }

    pub async fn delete_project(&mut self, id: Uuid) -> Result<()> {
        let written =
            crate::db::query("DELETE FROM projects WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_project");
        Ok(())
    }
}

/// Every role a user holds in a workspace: two lookups by (workspace_id,
/// user_id) and (workspace_id, group_id), never a walk over the members.
async fn membership_roles_of_user(
    conn: &mut crate::db::Conn,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<WorkspaceRole>> {
    let rows = crate::db::query(
        "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2 \
         UNION ALL SELECT m.role FROM group_members g CROSS JOIN workspace_members m \
         WHERE g.user_id = $2 AND m.workspace_id = $1 AND m.group_id = g.group_id",
    )
    .bind(workspace_id.to_string())
    .bind(user_id.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| r.parse("role")).collect()
}

impl crate::Store {
    /// [`Tx::membership_roles_of_user`] in one statement outside any
    /// transaction (authenticating a workspace's API key).
    pub async fn membership_roles_of_user(&self, workspace_id: Uuid, user_id: Uuid) -> Result<Vec<WorkspaceRole>> {
        let mut conn = self.pool().acquire().await?;
        membership_roles_of_user(&mut conn, workspace_id, user_id).await
    }
}

/// Up to this many workspaces, [`Tx::lock_workspaces`] takes their turns.
const TURNS_AT_ONCE: usize = 32;

/// A workspace's turn on PostgreSQL: the advisory lock its row's lockers
/// take first, exclusive for [`Tx::lock_workspace`] and shared for
/// [`Tx::share_workspace`]. Row locks are not queued fairly: a new `FOR
/// SHARE` is granted beside the holders while an exclusive locker waits, so
/// a steady stream of binding adds kept a member's removal waiting for as
/// long as it ran (11.4 s under B4's adds). Advisory locks queue in order:
/// once a removal waits, adds after it wait behind it. Both statements
/// take the turn before the row (the row is locked only once the joined
/// turn has been taken). The key is the id's last 64 bits (random in a
/// UUID v7), as the two 32-bit halves of `pg_advisory_xact_lock(int, int)`,
/// whose locks never meet the scheduler's one-key lock: two workspaces
/// sharing a turn (odds about 2^-64 a pair) could at worst deadlock two
/// transactions, which the database breaks and Canopy answers with a
/// retryable 409.
fn workspace_turn(workspace_id: Uuid) -> (i64, i64) {
    let low = workspace_id.as_u128() as u64;
    (i64::from((low >> 32) as u32 as i32), i64::from(low as u32 as i32))
}
