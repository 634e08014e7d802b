//! Four-eye requests (FE1–FE4) and their approvals.
//!
//! A decision is taken under [`Tx::lock_role_request`]: the request's row is
//! locked (PostgreSQL) or the single writer is held (SQLite), so concurrent
//! approvals of one request are decided one after the other and only the
//! first that completes it applies it.

use std::collections::BTreeSet;

use crate::db::Row;
use canopy_domain::four_eye::{Request, RequestKind, RequestState};
use canopy_domain::mail::{RequestNotice, request_decided};
use canopy_domain::{Subject, SubjectKind};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, RowExt, StoreError, Tx, new_id, to_us};

/// A request with the names a reader needs.
#[derive(Debug, Clone)]
pub struct RoleRequestRecord {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub workspace: String,
    pub project_id: Uuid,
    pub project: String,
    pub kind: RequestKind,
    /// The binding it changes or removes; for an add, the binding it made.
    pub binding_id: Option<Uuid>,
    pub subject: Subject,
    /// Username or group identifier.
    pub subject_name: String,
    pub role_id: Uuid,
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
    /// For a change: the role and expiration the binding had.
    pub from_role: Option<String>,
    pub from_role_id: Option<Uuid>,
    pub from_expires_at: Option<OffsetDateTime>,
    pub justification: String,
    pub approvals_required: u32,
    /// The person who asked (for a request filed with an API key, the key's creator).
    pub requested_by_id: Uuid,
    pub requested_by: String,
    /// The API key the request was filed with, if any.
    pub requested_by_key_id: Option<Uuid>,
    pub requested_at: OffsetDateTime,
    pub state: RequestState,
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// Who approved, in order.
    pub approvals: Vec<ApprovalRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub approver_id: Uuid,
    pub approver: String,
    pub approved_at: OffsetDateTime,
}

impl RoleRequestRecord {
    /// The request as the approval rules see it; `beneficiaries` are the
    /// people its subject reaches now ([`crate::Tx::people_reached`]).
    pub fn rule(&self, beneficiaries: BTreeSet<Uuid>) -> Request {
        Request {
            requester: self.requested_by_id,
            requester_key: self.requested_by_key_id,
            state: self.state,
            required: self.approvals_required,
            approvals: self.approvals.iter().map(|a| a.approver_id).collect::<BTreeSet<_>>(),
            beneficiaries,
        }
    }

    /// The request as its e-mails describe it; `id` and `subject` are its
    /// id and [`Self::subject_string`] as text.
    pub fn notice<'a>(&'a self, id: &'a str, subject: &'a str) -> RequestNotice<'a> {
        RequestNotice {
            id,
            workspace: &self.workspace,
            project: &self.project,
            kind: self.kind,
            subject,
            role: &self.role,
            expires_at: self.expires_at,
            requester: &self.requested_by,
            justification: &self.justification,
            approvals_required: self.approvals_required,
        }
    }

    /// `user:NAME` or `group:NAME`.
    pub fn subject_string(&self) -> String {
        format!("{}:{}", self.subject.kind.as_str(), self.subject_name)
    }
}

/// A new request.
#[derive(Debug, Clone)]
pub struct NewRoleRequest<'a> {
    pub workspace_id: Uuid,
    pub project_id: Uuid,
    pub kind: RequestKind,
    pub binding_id: Option<Uuid>,
    pub subject: Subject,
    pub role_id: Uuid,
    pub expires_at: Option<OffsetDateTime>,
    pub from_role_id: Option<Uuid>,
    pub from_expires_at: Option<OffsetDateTime>,
    pub justification: &'a str,
    pub approvals_required: u32,
    pub requested_by_id: Uuid,
    pub requested_by: &'a str,
    pub requested_by_key_id: Option<Uuid>,
    /// The subject's username or group identifier, kept should the subject go.
    pub subject_name: &'a str,
}

const SELECT: &str = "SELECT q.id, q.workspace_id, w.identifier AS workspace, q.project_id, p.identifier AS project, \
       q.kind, q.binding_id, q.user_id, q.group_id, q.role_id, r.identifier AS role, q.expires_at, \
       fr.identifier AS from_role, q.from_role_id, q.from_expires_at, q.justification, q.approvals_required, \
       q.requested_by_id, q.requested_by, q.requested_by_key_id, q.requested_at, q.state, q.decided_at, \
       q.decided_by, q.reason, q.subject_name \
     FROM role_requests q JOIN workspaces w ON w.id = q.workspace_id JOIN projects p ON p.id = q.project_id \
     JOIN project_roles r ON r.id = q.role_id LEFT JOIN project_roles fr ON fr.id = q.from_role_id";

fn from_row(r: &Row) -> Result<RoleRequestRecord> {
    let subject = match (r.uuid_opt("user_id")?, r.uuid_opt("group_id")?) {
        (Some(u), None) => Subject::user(u),
        (None, Some(g)) => Subject::group(g),
        _ => return Err(StoreError::Corrupt("request without exactly one subject".into())),
    };
    let required = r.int("approvals_required")?;
    Ok(RoleRequestRecord {
        id: r.uuid("id")?,
        workspace_id: r.uuid("workspace_id")?,
        workspace: r.text("workspace")?,
        project_id: r.uuid("project_id")?,
        project: r.text("project")?,
        kind: r.parse("kind")?,
        binding_id: r.uuid_opt("binding_id")?,
        subject,
        subject_name: r.text("subject_name")?,
        role_id: r.uuid("role_id")?,
        role: r.text("role")?,
        expires_at: r.time_opt("expires_at")?,
        from_role: r.text_opt("from_role")?,
        from_role_id: r.uuid_opt("from_role_id")?,
        from_expires_at: r.time_opt("from_expires_at")?,
        justification: r.text("justification")?,
        approvals_required: u32::try_from(required)
            .map_err(|_| StoreError::Corrupt(format!("approvals_required {required}")))?,
        requested_by_id: r.uuid("requested_by_id")?,
        requested_by: r.text("requested_by")?,
        requested_by_key_id: r.uuid_opt("requested_by_key_id")?,
        requested_at: r.time("requested_at")?,
        state: r.parse("state")?,
        decided_at: r.time_opt("decided_at")?,
        decided_by: r.text_opt("decided_by")?,
        reason: r.text_opt("reason")?,
        approvals: Vec::new(),
    })
}

/// Which requests a list shows.
#[derive(Debug, Clone, Copy)]
pub struct RequestFilter {
    /// One workspace, or every one.
    pub workspace_id: Option<Uuid>,
    /// One state, or every one.
    pub state: Option<RequestState>,
    /// One project's (with its workspace given), or every one.
    pub project_id: Option<Uuid>,
}

impl Tx {
    pub async fn insert_role_request(
        &mut self,
        q: NewRoleRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<RoleRequestRecord> {
        let id = new_id();
        let (user, group) = match q.subject.kind {
            SubjectKind::User => (Some(q.subject.id.to_string()), None),
            SubjectKind::Group => (None, Some(q.subject.id.to_string())),
        };
        let written = crate::db::query(
            "INSERT INTO role_requests (id, workspace_id, project_id, kind, binding_id, user_id, group_id, role_id, \
               expires_at, from_role_id, from_expires_at, justification, approvals_required, requested_by_id, \
               requested_by, requested_at, state, requested_by_key_id, subject_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'pending', $17, $18)",
        )
        .bind(&id)
        .bind(q.workspace_id.to_string())
        .bind(q.project_id.to_string())
        .bind(q.kind.as_str())
        .bind(q.binding_id.map(|b| b.to_string()))
        .bind(user)
        .bind(group)
        .bind(q.role_id.to_string())
        .bind(q.expires_at.map(to_us))
        .bind(q.from_role_id.map(|r| r.to_string()))
        .bind(q.from_expires_at.map(to_us))
        .bind(q.justification)
        .bind(i64::from(q.approvals_required))
        .bind(q.requested_by_id.to_string())
        .bind(q.requested_by)
        .bind(to_us(now))
        .bind(q.requested_by_key_id.map(|k| k.to_string()))
        .bind(q.subject_name)
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_role_request");
        self.role_request(&id).await?.ok_or(StoreError::Conflict)
    }

    /// A pending request like `q`: an add of the same subject and role to
    /// the same project, or a change or removal of the same binding.
    pub async fn similar_pending_request(&mut self, q: &NewRoleRequest<'_>) -> Result<Option<Uuid>> {
        let row = crate::db::query(
            "SELECT id FROM role_requests WHERE state = 'pending' AND project_id = $1 AND kind = $2 \
             AND (($3 <> '' AND binding_id = $3) OR ($3 = '' AND role_id = $4 AND (user_id = $5 OR group_id = $5)))",
        )
        .bind(q.project_id.to_string())
        .bind(q.kind.as_str())
        .bind(q.binding_id.map(|b| b.to_string()).unwrap_or_default())
        .bind(q.role_id.to_string())
        .bind(q.subject.id.to_string())
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| r.uuid("id")).transpose()
    }

    /// A request with its approvals.
    pub async fn role_request(&mut self, id: &str) -> Result<Option<RoleRequestRecord>> {
        let row = crate::db::query(format!("{SELECT} WHERE q.id = $1")).bind(id).fetch_optional(self.conn()).await?;
        let Some(mut q) = row.as_ref().map(from_row).transpose()? else {
            return Ok(None);
        };
        q.approvals = self.approvals_of(q.id).await?;
        Ok(Some(q))
    }

    /// Requests from their rows, each with its approvals.
    async fn with_approvals(&mut self, rows: &[Row]) -> Result<Vec<RoleRequestRecord>> {
        let mut out = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        for q in &mut out {
            q.approvals = self.approvals_of(q.id).await?;
        }
        Ok(out)
    }

    async fn approvals_of(&mut self, request_id: Uuid) -> Result<Vec<ApprovalRecord>> {
        let rows = crate::db::query(
            "SELECT approver_id, approver, approved_at FROM role_request_approvals WHERE request_id = $1 \
             ORDER BY approved_at, approver",
        )
        .bind(request_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApprovalRecord {
                    approver_id: r.uuid("approver_id")?,
                    approver: r.text("approver")?,
                    approved_at: r.time("approved_at")?,
                })
            })
            .collect()
    }

    /// The pending requests that name `subject`, or that `person` filed
    /// (themself or with one of their API keys), oldest first.
    pub async fn pending_requests_touching(
        &mut self,
        subject: Option<Subject>,
        person: Option<Uuid>,
    ) -> Result<Vec<RoleRequestRecord>> {
        let (user, group) = match subject {
            Some(s) if s.kind == SubjectKind::User => (Some(s.id.to_string()), None),
            Some(s) => (None, Some(s.id.to_string())),
            None => (None, None),
        };
        let rows = crate::db::query(format!(
            "{SELECT} WHERE q.state = 'pending' AND (q.user_id = $1 OR q.group_id = $2 OR q.requested_by_id = $3) \
             ORDER BY q.requested_at, q.id"
        ))
        .bind(user)
        .bind(group)
        .bind(person.map(|p| p.to_string()))
        .fetch_all(self.conn())
        .await?;
        self.with_approvals(&rows).await
    }

    /// Lock a request until the transaction ends, so that decisions on it
    /// are taken one at a time (FE4). Read it again after locking.
    pub async fn lock_role_request(&mut self, id: Uuid) -> Result<()> {
        if self.only_writer() {
            return Ok(());
        }
        crate::db::query("UPDATE role_requests SET state = state WHERE id = $1")
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Requests, newest first, after the cursor `(requested_at, id)`, at most `limit`.
    pub async fn role_requests(
        &mut self,
        filter: RequestFilter,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: i64,
    ) -> Result<Vec<RoleRequestRecord>> {
        // only the filters given, so that each reaches its index
        // ((workspace_id, state) or (state, requested_at)): `$n IS NULL OR`
        // would make SQLite walk every request; and the cursor as one
        // row-value comparison with a value always bound (the latest time
        // when there is none), which PostgreSQL's index scan starts from
        // (`$1 IS NULL OR ...` it applied to every row instead)
        let mut sql = format!("{SELECT} WHERE (q.requested_at, q.id) < ($1, $2)");
        let mut n = 2;
        let mut next = |column: &str| {
            n += 1;
            format!(" AND q.{column} = ${n}")
        };
        if filter.workspace_id.is_some() {
            sql.push_str(&next("workspace_id"));
        }
        if filter.state.is_some() {
            sql.push_str(&next("state"));
        }
        if filter.project_id.is_some() {
            sql.push_str(&next("project_id"));
        }
        sql.push_str(" ORDER BY q.requested_at DESC, q.id DESC LIMIT ");
        sql.push_str(&limit.to_string());
        let mut q = crate::db::query(sql)
            .bind(after.map_or(i64::MAX, |(t, _)| to_us(t)))
            .bind(after.map(|(_, id)| id.to_string()).unwrap_or_default());
        if let Some(ws) = filter.workspace_id {
            q = q.bind(ws.to_string());
        }
        if let Some(state) = filter.state {
            q = q.bind(state.as_str());
        }
        if let Some(p) = filter.project_id {
            q = q.bind(p.to_string());
        }
        let rows = q.fetch_all(self.conn()).await?;
        self.with_approvals(&rows).await
    }

    /// Record one person's approval; `Conflict` if they approved already.
    pub async fn add_approval(
        &mut self,
        request_id: Uuid,
        approver_id: Uuid,
        approver: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        let written = crate::db::query(
            "INSERT INTO role_request_approvals (request_id, approver_id, approver, approved_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(request_id.to_string())
        .bind(approver_id.to_string())
        .bind(approver)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "add_approval");
        Ok(())
    }

    /// Settle a pending request. False when it was decided already.
    pub async fn decide_role_request(&mut self, id: Uuid, decision: Decision<'_>, now: OffsetDateTime) -> Result<bool> {
        let done = crate::db::query(
            "UPDATE role_requests SET state = $2, decided_at = $3, decided_by = $4, reason = $5, \
               binding_id = COALESCE($6, binding_id) WHERE id = $1 AND state = 'pending'",
        )
        .bind(id.to_string())
        .bind(decision.state.as_str())
        .bind(to_us(now))
        .bind(decision.by)
        .bind(decision.reason)
        .bind(decision.binding_id.map(|b| b.to_string()))
        .execute(self.conn())
        .await?;
        self.changed(done.rows_affected(), "decide_role_request");
        Ok(done.rows_affected() == 1)
    }

    /// How many of a workspace's pending requests wait for `person`'s
    /// decision: neither theirs nor approved by them yet.
    pub async fn count_requests_to_decide(&mut self, workspace_id: Uuid, person: Uuid) -> Result<u64> {
        let r = crate::db::query(
            "SELECT COUNT(*) AS n FROM role_requests q WHERE q.workspace_id = $1 AND q.state = 'pending' \
             AND q.requested_by_id <> $2 AND NOT EXISTS (SELECT 1 FROM role_request_approvals a \
               WHERE a.request_id = q.id AND a.approver_id = $2)",
        )
        .bind(workspace_id.to_string())
        .bind(person.to_string())
        .fetch_one(self.conn())
        .await?;
        Ok(u64::try_from(r.int("n")?).unwrap_or(0))
    }

    /// E-mail the requester, when an active person, the outcome of their request (FE2).
    pub async fn tell_requester(
        &mut self,
        q: &RoleRequestRecord,
        state: RequestState,
        by: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let Some(requester) = self.user_by_id(q.requested_by_id).await?.filter(|u| u.active) else {
            return Ok(());
        };
        let Ok(to) = canopy_domain::Email::parse(&requester.email) else {
            return Ok(());
        };
        let (id, subject) = (q.id.to_string(), q.subject_string());
        self.enqueue_mail(&request_decided(&to, &q.notice(&id, &subject), state, by, reason), now).await
    }

    /// Pending requests made at or before `before`, oldest first, at most `limit`.
    pub async fn lapsed_requests(&mut self, before: OffsetDateTime, limit: i64) -> Result<Vec<RoleRequestRecord>> {
        let rows = crate::db::query(format!(
            "{SELECT} WHERE q.state = 'pending' AND q.requested_at <= $1 ORDER BY q.requested_at, q.id LIMIT CAST($2 AS BIGINT)"
        ))
        .bind(to_us(before))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// How many requests still wait for approval with a project role.
    pub async fn count_pending_requests_with_role(&mut self, role_id: Uuid) -> Result<i64> {
        let r = crate::db::query(
            "SELECT COUNT(*) AS n FROM role_requests WHERE state = 'pending' AND (role_id = $1 OR from_role_id = $1)",
        )
        .bind(role_id.to_string())
        .fetch_one(self.conn())
        .await?;
        r.int("n")
    }
}

/// How a request was settled.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub state: RequestState,
    pub by: &'a str,
    pub reason: Option<&'a str>,
    /// The binding an applied add made.
    pub binding_id: Option<Uuid>,
}
